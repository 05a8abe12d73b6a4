"""What the demo's people write: subjects and bodies per language and kind.

Placeholders: {first} (the other person's first name), {product}, {qty}, {ref},
{me} (the mailbox owner), {company} (the writer's company).
"""

from __future__ import annotations

# kind → language → (subject, body); customers write inquiry/order/payment/complaint/
# followup/thanks, the owner answers with quote/confirm/shipped/answer
CUSTOMER = {
    "inquiry": {
        "en": ("Inquiry: {product} for our {season} season",
               "Dear {me},\n\nWe are interested in {qty} units of {product}. Could you send us your best "
               "FOB Ningbo price, the lead time and the minimum order quantity?\n\nBest regards,\n{first}\n{company}"),
        "es": ("Solicitud de cotización: {product}",
               "Estimado {me}:\n\nNos interesa comprar {qty} unidades de {product}. ¿Podría enviarnos su mejor "
               "precio FOB, el plazo de entrega y la cantidad mínima?\n\nSaludos cordiales,\n{first}\n{company}"),
        "pt": ("Pedido de cotação: {product}",
               "Prezado {me},\n\nTemos interesse em {qty} unidades de {product}. Poderia nos enviar o seu melhor "
               "preço FOB, o prazo de entrega e o pedido mínimo?\n\nAtenciosamente,\n{first}\n{company}"),
        "ru": ("Запрос цены: {product}",
               "Здравствуйте, {me}!\n\nНас интересуют {product}, {qty} шт. Пришлите, пожалуйста, лучшую цену FOB, "
               "срок поставки и минимальный заказ.\n\nС уважением,\n{first}\n{company}"),
    },
    "order": {
        "en": ("Purchase order {ref}", "Hi {me},\n\nPlease find our purchase order {ref} for {qty} pcs of {product}. "
               "Kindly confirm the delivery date.\n\nThanks,\n{first}"),
        "es": ("Orden de compra {ref}", "Hola {me}:\n\nLe enviamos la orden de compra {ref} por {qty} piezas de "
               "{product}. Por favor confirme la fecha de entrega.\n\nGracias,\n{first}"),
        "pt": ("Pedido de compra {ref}", "Olá {me},\n\nSegue o nosso pedido {ref} de {qty} peças de {product}. "
               "Por favor, confirme a data de embarque.\n\nObrigado,\n{first}"),
        "ru": ("Заказ {ref}", "Добрый день, {me}!\n\nНаправляем заказ {ref}: {product}, {qty} шт. "
               "Подтвердите, пожалуйста, дату отгрузки.\n\nСпасибо,\n{first}"),
    },
    "payment": {
        "en": ("Payment for {ref}", "Dear {me},\n\nWe have sent the 30% deposit for {ref} today. The bank slip is "
               "attached.\n\nRegards,\n{first}"),
        "es": ("Pago del pedido {ref}", "Estimado {me}:\n\nHoy realizamos el depósito del 30% del pedido {ref}. "
               "Adjunto el comprobante.\n\nSaludos,\n{first}"),
        "pt": ("Pagamento do pedido {ref}", "Prezado {me},\n\nHoje enviamos o sinal de 30% do pedido {ref}. "
               "O comprovante segue em anexo.\n\nAbraços,\n{first}"),
        "ru": ("Оплата по заказу {ref}", "Здравствуйте, {me}!\n\nСегодня мы оплатили аванс 30% по заказу {ref}. "
               "Платёжное поручение во вложении.\n\nС уважением,\n{first}"),
    },
    "complaint": {
        "en": ("Damaged cartons in shipment {ref}", "Hello {me},\n\nSome cartons of {product} arrived damaged "
               "(photos attached). How can we solve this?\n\n{first}"),
        "es": ("Cajas dañadas en el envío {ref}", "Hola {me}:\n\nAlgunas cajas de {product} llegaron dañadas "
               "(adjunto fotos). ¿Cómo lo podemos resolver?\n\n{first}"),
        "pt": ("Caixas danificadas no embarque {ref}", "Olá {me},\n\nAlgumas caixas de {product} chegaram "
               "danificadas (fotos em anexo). Como podemos resolver?\n\n{first}"),
        "ru": ("Повреждённые коробки в партии {ref}", "Здравствуйте, {me}!\n\nЧасть коробок с товаром "
               "«{product}» пришла повреждённой (фото во вложении). Как решим вопрос?\n\n{first}"),
    },
    "followup": {
        "en": ("Following up: {product}", "Hi {me},\n\nJust following up on my last email about {product}. "
               "Any news on the price?\n\n{first}"),
        "es": ("Seguimiento: {product}", "Hola {me}:\n\nLe escribo para dar seguimiento a mi último correo sobre "
               "{product}. ¿Alguna novedad sobre el precio?\n\n{first}"),
        "pt": ("Acompanhamento: {product}", "Olá {me},\n\nEstou retomando o meu último e-mail sobre {product}. "
               "Alguma novidade sobre o preço?\n\n{first}"),
        "ru": ("Напоминание: {product}", "Здравствуйте, {me}!\n\nНапоминаю о моём письме про товар «{product}». "
               "Есть новости по цене?\n\n{first}"),
    },
    "thanks": {
        "en": ("Goods received - thank you", "Dear {me},\n\nThe container arrived in good condition. Thank you "
               "for the smooth cooperation, we will place the next order soon.\n\n{first}"),
        "es": ("Mercancía recibida, gracias", "Estimado {me}:\n\nEl contenedor llegó en buen estado. Gracias por "
               "la buena colaboración; pronto haremos el siguiente pedido.\n\n{first}"),
        "pt": ("Mercadoria recebida - obrigado", "Prezado {me},\n\nO contêiner chegou em perfeito estado. Obrigado "
               "pela parceria, faremos o próximo pedido em breve.\n\n{first}"),
        "ru": ("Товар получен, спасибо", "Здравствуйте, {me}!\n\nКонтейнер пришёл в хорошем состоянии. Спасибо "
               "за сотрудничество, скоро разместим следующий заказ.\n\n{first}"),
    },
}

OWNER = {
    "quote": {
        "en": "Dear {first},\n\nThank you for your inquiry. Please find our quotation {ref} for {product} "
              "attached (FOB Ningbo, valid for 30 days). Lead time is 25-30 days after deposit.\n\n"
              "Best regards,\nWu Jun\nExample Trading Co.",
        "es": "Estimado/a {first}:\n\nGracias por su consulta. Adjunto nuestra cotización {ref} de {product} "
              "(FOB Ningbo, válida 30 días). El plazo de entrega es de 25-30 días tras el anticipo.\n\n"
              "Saludos cordiales,\nWu Jun\nExample Trading Co.",
        "pt": "Prezado/a {first},\n\nObrigado pelo contato. Segue em anexo a nossa cotação {ref} de {product} "
              "(FOB Ningbo, válida por 30 dias). Prazo de produção: 25-30 dias após o sinal.\n\n"
              "Atenciosamente,\nWu Jun\nExample Trading Co.",
        "ru": "Здравствуйте, {first}!\n\nСпасибо за запрос. Во вложении наше предложение {ref} на товар "
              "«{product}» (FOB Нинбо, действует 30 дней). Срок производства 25-30 дней после аванса.\n\n"
              "С уважением,\nWu Jun\nExample Trading Co.",
    },
    "answer": {
        "en": "Hi {first},\n\nThank you, well noted. I will check with the factory and come back to you "
              "tomorrow.\n\nBest regards,\nWu Jun",
        "es": "Hola {first}:\n\nGracias, tomo nota. Lo consulto con la fábrica y le respondo mañana.\n\n"
              "Saludos,\nWu Jun",
        "pt": "Olá {first},\n\nObrigado, anotado. Vou verificar com a fábrica e retorno amanhã.\n\n"
              "Abraços,\nWu Jun",
        "ru": "Здравствуйте, {first}!\n\nСпасибо, принято. Уточню на фабрике и завтра вернусь с ответом.\n\n"
              "С уважением,\nWu Jun",
    },
    "shipped": {
        "en": "Dear {first},\n\nYour order {ref} has been shipped. The draft B/L and the packing list are "
              "attached; ETA about 35 days.\n\nBest regards,\nWu Jun",
        "es": "Estimado/a {first}:\n\nSu pedido {ref} ya fue embarcado. Adjunto el borrador del B/L y la lista "
              "de empaque; llegada estimada en unos 35 días.\n\nSaludos,\nWu Jun",
        "pt": "Prezado/a {first},\n\nO seu pedido {ref} foi embarcado. Seguem o rascunho do B/L e o packing "
              "list; chegada prevista em cerca de 35 dias.\n\nAbraços,\nWu Jun",
        "ru": "Здравствуйте, {first}!\n\nВаш заказ {ref} отгружен. Во вложении проект коносамента и "
              "упаковочный лист; прибытие примерно через 35 дней.\n\nС уважением,\nWu Jun",
    },
}

SUPPLIER = [
    ("{product}最新报价 {ref}", "吴经理您好：\n\n附件是{product}的最新报价单（{ref}），含税出厂价，"
     "有效期一个月。原材料近期上涨，请尽早确认订单。\n\n谢谢！\n{first}\n{company}"),
    ("{ref} 生产进度", "吴经理：\n\n订单{ref}的{product}已完成约七成，预计下周五可以验货，"
     "请安排客户验货时间。\n\n{first}\n{company}"),
    ("关于{product}的包装确认", "吴经理您好：\n\n{product}的彩盒样稿见附件，请确认后回复，"
     "我们安排印刷。\n\n{first}"),
]
LOGISTICS = {
    "zh": [("订舱确认 {ref} 宁波-曼萨尼约", "吴先生您好：\n\n{ref}已订舱成功，船期下周三，截港时间周一中午，"
            "请提前安排拖车。\n\n{first}\n{company}"),
           ("提单草稿确认 {ref}", "您好：\n\n附件为{ref}的提单草稿，请于今天下班前确认。\n\n{first}")],
    "en": [("Booking confirmation {ref}", "Dear Mr. Wu,\n\nBooking {ref} is confirmed, vessel ETD next "
            "Wednesday, CY cut-off Monday noon.\n\nBest regards,\n{first}\n{company}"),
           ("Arrival notice {ref}", "Dear Mr. Wu,\n\nShipment {ref} has arrived at the destination port. "
            "Please inform the consignee.\n\n{first}\n{company}")],
}
COLLEAGUE = [
    ("本周销售例会", "各位：\n\n本周五下午三点在三楼会议室开销售例会，请准备各自客户的跟进情况。\n\n{first}"),
    ("样品寄送登记", "吴军：\n\n{product}的样品已经交给快递，单号稍后发你。\n\n{first}"),
    ("财务提醒：{ref} 尾款", "吴军你好：\n\n客户订单{ref}的尾款还没有到账，麻烦跟客户确认一下。\n\n财务部 {first}"),
    ("邮箱更换通知", "各位同事：\n\n公司邮箱系统升级，新邮箱已开通，请尽快登录并设置签名。\n\nIT {first}"),
]
SEASONS = {"en": "spring", "es": "primavera", "pt": "primavera", "ru": "весенний"}

NEWSLETTERS = [
    ("Global Trade Weekly", "news@globaltradeweekly.example", "weekly.globaltradeweekly.example",
     "This week: freight rates from Asia to Latin America, new customs rules, fair calendar"),
    ("B2B Export Hub", "digest@b2bexporthub.example", "digest.b2bexporthub.example",
     "Your buyer requests digest: 12 new inquiries matched your products"),
    ("广交会资讯", "info@cantonfair-news.example", "info.cantonfair-news.example",
     "本期：下一届展会报名开始，展位申请指南"),
    ("Container Index", "index@containerindex.example", "index.containerindex.example",
     "Spot rates this week: Ningbo-Manzanillo, Shanghai-Santos, Ningbo-Novorossiysk"),
]
SPAM = [
    ("Your mailbox storage is full - verify now", "billing@mailbox-verify.example"),
    ("Cheap LED chips, factory direct!!!", "promo@cheap-chips-4u.example"),
    ("Congratulations, you won a gift card", "winner@lucky-prize.example"),
    ("URGENT: invoice overdue", "accounts@overdue-invoices.example"),
    ("代开发票 低价优惠", "fapiao@daikai.example"),
]
